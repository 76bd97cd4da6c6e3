#include "domain/event_types.h"

#include "domain/strings.h"

namespace fidelis {

std::string AccountStream(std::string_view account_id) {
  return StrCat(kAccountCategory, "-", account_id);
}

std::string AccountNumberStream(std::string_view account_number) {
  return StrCat(kAccountNumberCategory, "-", account_number);
}

std::string_view CategoryOf(std::string_view stream_id) {
  return stream_id.substr(0, stream_id.find('-'));
}

std::string_view StreamEntityId(std::string_view stream_id) {
  size_t dash = stream_id.find('-');
  return dash == std::string_view::npos ? std::string_view() : stream_id.substr(dash + 1);
}

}  // namespace fidelis
