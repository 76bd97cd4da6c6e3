// Names the calling thread, so that `top -H`, `perf` and debuggers show what each of the
// server's threads does. Linux keeps at most 15 bytes of a name; longer names are cut.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace fidelis::storage {

// Thread-safe; affects only the calling thread. Failure is ignored: a name is a diagnostic.
inline void NameThisThread(std::string_view name) {
  std::string cut(name.substr(0, 15));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace fidelis::storage
