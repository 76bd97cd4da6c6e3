// An in-memory RowStore for projector unit tests.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "domain/projector.h"

namespace fidelis::testing {

class FakeRowStore : public RowStore {
 public:
  absl::StatusOr<google::protobuf::Message*> Row(std::string_view key,
                                                 const google::protobuf::Message& prototype,
                                                 bool* found) override {
    auto it = rows_.find(std::string(key));
    *found = it != rows_.end();
    if (!*found) it = rows_.emplace(std::string(key), prototype.New()).first;
    return it->second.get();
  }

  template <typename T>
  const T* Get(const std::string& key) const {
    auto it = rows_.find(key);
    return it == rows_.end() ? nullptr : static_cast<const T*>(it->second.get());
  }

  size_t size() const { return rows_.size(); }

 private:
  std::map<std::string, std::unique_ptr<google::protobuf::Message>> rows_;
};

}  // namespace fidelis::testing
