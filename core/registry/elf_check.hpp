// Checks a plugin file's ELF headers against the file's size before dlopen:
// the loader maps segments straight from the file, and touching a page past
// the end of a truncated file raises SIGBUS, which no error path can catch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sparkle::registry {

// Empty when `bytes` (the start of the file, at least its ELF and program
// headers) and `file_size` describe a complete shared object for this
// machine; else why not ("truncated: segment 2 ends at byte 81234, the file
// has 40960"). Reads nothing beyond the buffer it is given.
std::string elf_problem(std::string_view bytes, uint64_t file_size);

// Opens path without blocking (a FIFO never waits for a writer), refuses
// anything but a regular file, reads the headers and runs elf_problem.
std::string plugin_file_problem(const std::string& path);

}  // namespace sparkle::registry
