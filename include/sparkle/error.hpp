// sparkle::Error: the one exception type of the public API. Its message names
// the field at fault ("pad_top=-1 must be >= 0").
#pragma once

#include <sparkle/plugin.h>

#include <stdexcept>
#include <string>

namespace sparkle {

enum class ErrorCode {
  invalid_argument = SPARKLE_INVALID_ARGUMENT,
  unsupported = SPARKLE_UNSUPPORTED,
  out_of_memory = SPARKLE_OUT_OF_MEMORY,
  device_error = SPARKLE_DEVICE_ERROR,
  not_found = SPARKLE_NOT_FOUND,
  io_error = SPARKLE_IO_ERROR,
  internal = SPARKLE_INTERNAL,
};

const char* to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }
  // True when the caller's input is at fault (CLI exit status 2).
  bool is_user_error() const noexcept {
    return code_ == ErrorCode::invalid_argument || code_ == ErrorCode::not_found ||
           code_ == ErrorCode::io_error || code_ == ErrorCode::unsupported;
  }

 private:
  ErrorCode code_;
};

}  // namespace sparkle
