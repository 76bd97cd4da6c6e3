// Test helpers shared by every test executable: status assertions and temporary directories.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#define ASSERT_OK(expr)                                                   \
  do {                                                                    \
    const ::absl::Status fidelis_s_ = ::fidelis::testing::StatusOf(expr); \
    ASSERT_TRUE(fidelis_s_.ok()) << fidelis_s_.ToString();                \
  } while (0)
#define EXPECT_OK(expr)                                                   \
  do {                                                                    \
    const ::absl::Status fidelis_s_ = ::fidelis::testing::StatusOf(expr); \
    EXPECT_TRUE(fidelis_s_.ok()) << fidelis_s_.ToString();                \
  } while (0)
#define EXPECT_CODE(expr, code_value)                                                  \
  EXPECT_EQ(::fidelis::testing::StatusOf(expr).code(), ::absl::StatusCode::code_value) \
      << ::fidelis::testing::StatusOf(expr).ToString()

namespace fidelis::testing {

inline absl::Status StatusOf(const absl::Status& status) { return status; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// A fresh directory under the system's temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "fidelis-test-XXXXXX").string();
    char* made = mkdtemp(pattern.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace fidelis::testing
