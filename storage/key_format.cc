#include "storage/key_format.h"

#include "domain/strings.h"

namespace fidelis::storage {

void PutBigEndian64(std::string* out, uint64_t value) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(value & 0xFF);
    value >>= 8;
  }
  out->append(buf, 8);
}

uint64_t DecodeBigEndian64(std::string_view bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string EventKey(uint64_t global_position) {
  std::string key;
  PutBigEndian64(&key, global_position);
  return key;
}

std::string StreamPrefix(std::string_view stream_id) {
  std::string key(stream_id);
  key.push_back('\0');
  return key;
}

std::string StreamKey(std::string_view stream_id, int64_t version) {
  std::string key = StreamPrefix(stream_id);
  PutBigEndian64(&key, static_cast<uint64_t>(version));
  return key;
}

std::string StreamUpperBound(std::string_view stream_id) {
  std::string key(stream_id);
  key.push_back('\x01');
  return key;
}

std::string ProjectionFamily(std::string_view name, uint32_t version, uint32_t generation) {
  if (generation == 0) return StrCat("p/", name, "/v", version);
  return StrCat("p/", name, "/v", version, ".", generation);
}

std::string ProjectionFamilyPrefix(std::string_view name) { return StrCat("p/", name, "/v"); }

std::string CatalogKey(std::string_view projection) { return StrCat("projection/", projection); }

std::string RowKey(std::string_view row_key) {
  std::string key(1, kRowPrefix);
  key.append(row_key);
  return key;
}

std::string MetaKey(std::string_view name) {
  std::string key(1, kMetaPrefix);
  key.append(name);
  return key;
}

}  // namespace fidelis::storage
