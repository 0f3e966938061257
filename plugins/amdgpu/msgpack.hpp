// A small MessagePack reader: enough for the AMDGPU code object metadata
// note (NT_AMDGPU_METADATA), which LLVM writes as MessagePack (code object
// v3 and later). Only what that note uses is supported: nil, booleans,
// integers, floats, strings, binaries, arrays and maps; extension types are
// rejected.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sparkle::amdgpu {

struct MsgValue {
  enum class Type { Nil, Bool, Int, Float, String, Array, Map } type = Type::Nil;
  bool b = false;
  int64_t i = 0;  // also unsigned values up to INT64_MAX
  double f = 0;
  std::string s;  // strings and binaries
  std::vector<MsgValue> array;
  std::vector<std::pair<MsgValue, MsgValue>> map;

  // The map entry whose key is the string `key`, or nullptr.
  const MsgValue* find(std::string_view key) const;
  bool is_int() const { return type == Type::Int; }
  bool is_string() const { return type == Type::String; }
};

// Parses exactly one value spanning [data, data + size). Throws
// std::runtime_error naming the byte offset on malformed input.
MsgValue parse_msgpack(const uint8_t* data, size_t size);

}  // namespace sparkle::amdgpu
