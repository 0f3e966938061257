// MessagePack decoding for the code object metadata (format from the
// MessagePack specification, msgpack/msgpack spec.md).
#include "msgpack.hpp"

#include <cstring>
#include <limits>
#include <stdexcept>

namespace sparkle::amdgpu {
namespace {

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  MsgValue value(int depth) {
    if (depth > 64) fail("nesting deeper than 64");
    const uint8_t tag = byte();
    MsgValue v;
    if (tag <= 0x7f) return integer(tag);
    if (tag >= 0xe0) return integer(static_cast<int8_t>(tag));
    if ((tag & 0xf0) == 0x80) return map(tag & 0x0f, depth);
    if ((tag & 0xf0) == 0x90) return array(tag & 0x0f, depth);
    if ((tag & 0xe0) == 0xa0) return string(tag & 0x1f);
    switch (tag) {
      case 0xc0:
        return v;
      case 0xc2:
      case 0xc3:
        v.type = MsgValue::Type::Bool;
        v.b = tag == 0xc3;
        return v;
      case 0xc4:
        return string(be(1));
      case 0xc5:
        return string(be(2));
      case 0xc6:
        return string(be(4));
      case 0xca: {
        const uint32_t bits = static_cast<uint32_t>(be(4));
        float f;
        std::memcpy(&f, &bits, sizeof f);
        v.type = MsgValue::Type::Float;
        v.f = f;
        return v;
      }
      case 0xcb: {
        const uint64_t bits = be(8);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        v.type = MsgValue::Type::Float;
        v.f = d;
        return v;
      }
      case 0xcc:
        return unsigned_integer(be(1));
      case 0xcd:
        return unsigned_integer(be(2));
      case 0xce:
        return unsigned_integer(be(4));
      case 0xcf:
        return unsigned_integer(be(8));
      case 0xd0:
        return integer(static_cast<int8_t>(be(1)));
      case 0xd1:
        return integer(static_cast<int16_t>(be(2)));
      case 0xd2:
        return integer(static_cast<int32_t>(be(4)));
      case 0xd3:
        return integer(static_cast<int64_t>(be(8)));
      case 0xd9:
        return string(be(1));
      case 0xda:
        return string(be(2));
      case 0xdb:
        return string(be(4));
      case 0xdc:
        return array(be(2), depth);
      case 0xdd:
        return array(be(4), depth);
      case 0xde:
        return map(be(2), depth);
      case 0xdf:
        return map(be(4), depth);
      default:
        fail("unsupported type byte " + std::to_string(tag));
    }
  }

  size_t offset() const { return pos_; }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("msgpack: " + what + " at byte " + std::to_string(pos_));
  }
  uint8_t byte() {
    if (pos_ >= size_) fail("unexpected end of data");
    return data_[pos_++];
  }
  uint64_t be(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | byte();
    return v;
  }
  MsgValue integer(int64_t i) {
    MsgValue v;
    v.type = MsgValue::Type::Int;
    v.i = i;
    return v;
  }
  MsgValue unsigned_integer(uint64_t u) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail("integer too large");
    return integer(static_cast<int64_t>(u));
  }
  MsgValue string(uint64_t n) {
    if (n > size_ - pos_) fail("string runs past the end");
    MsgValue v;
    v.type = MsgValue::Type::String;
    v.s.assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return v;
  }
  MsgValue array(uint64_t n, int depth) {
    // Each element takes at least a byte: bounds the reserve.
    if (n > size_ - pos_) fail("array longer than the data");
    MsgValue v;
    v.type = MsgValue::Type::Array;
    v.array.reserve(static_cast<size_t>(n));
    for (uint64_t k = 0; k < n; ++k) v.array.push_back(value(depth + 1));
    return v;
  }
  MsgValue map(uint64_t n, int depth) {
    if (n > (size_ - pos_) / 2) fail("map longer than the data");
    MsgValue v;
    v.type = MsgValue::Type::Map;
    v.map.reserve(static_cast<size_t>(n));
    for (uint64_t k = 0; k < n; ++k) {
      MsgValue key = value(depth + 1);
      MsgValue val = value(depth + 1);
      v.map.emplace_back(std::move(key), std::move(val));
    }
    return v;
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

const MsgValue* MsgValue::find(std::string_view key) const {
  if (type != Type::Map) return nullptr;
  for (const auto& [k, v] : map)
    if (k.type == Type::String && k.s == key) return &v;
  return nullptr;
}

MsgValue parse_msgpack(const uint8_t* data, size_t size) {
  Reader r(data, size);
  MsgValue v = r.value(0);
  if (r.offset() != size)
    throw std::runtime_error("msgpack: " + std::to_string(size - r.offset()) +
                             " bytes after the value");
  return v;
}

}  // namespace sparkle::amdgpu
