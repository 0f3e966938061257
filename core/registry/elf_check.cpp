// ELF header and program header checks of plugin files (elf_check.hpp).
#include "registry/elf_check.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sparkle::registry {
namespace {

// The machine this library was built for: a plugin for another one would
// fail in dlopen anyway, but with a less clear message.
constexpr int kHostMachine =
#if defined(__x86_64__)
    EM_X86_64;
#elif defined(__aarch64__)
    EM_AARCH64;
#elif defined(__riscv) && __riscv_xlen == 64
    EM_RISCV;
#elif defined(__powerpc64__)
    EM_PPC64;
#elif defined(__s390x__)
    EM_S390;
#else
    -1;  // unknown: not checked
#endif

// Headers read before dlopen: the ELF header plus program headers, which
// real plugins keep in their first page.
constexpr size_t kHeaderBytes = 64 * 1024;

// a + b <= limit without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) { return a <= limit && b <= limit - a; }

}  // namespace

std::string elf_problem(std::string_view bytes, uint64_t file_size) {
  if (file_size == 0) return "empty file (an interrupted install?)";
  if (bytes.size() < EI_NIDENT || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0)
    return "not an ELF file";
  if (bytes[EI_CLASS] != ELFCLASS64) return "not a 64-bit ELF file";
  if (bytes[EI_DATA] != ELFDATA2LSB) return "not a little-endian ELF file";
  if (bytes.size() < sizeof(Elf64_Ehdr))
    return "truncated: " + std::to_string(file_size) + " bytes, shorter than an ELF header";
  Elf64_Ehdr eh;
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (eh.e_type != ET_DYN)
    return "not a shared object (ELF type " + std::to_string(eh.e_type) + ")";
  if (kHostMachine >= 0 && eh.e_machine != kHostMachine)
    return "built for another machine (ELF machine " + std::to_string(eh.e_machine) +
           ", this one is " + std::to_string(kHostMachine) + ")";
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0) return "no usable program headers";
  const uint64_t ph_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (!fits(eh.e_phoff, ph_bytes, file_size))
    return "truncated: program headers end past the file's " + std::to_string(file_size) + " bytes";
  if (!fits(eh.e_phoff, ph_bytes, bytes.size()))
    return "program headers lie beyond the first " + std::to_string(bytes.size()) + " bytes";
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, bytes.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof ph);
    if (ph.p_type != PT_LOAD && ph.p_type != PT_DYNAMIC) continue;
    if (!fits(ph.p_offset, ph.p_filesz, file_size))
      return "truncated: segment " + std::to_string(i) + " ends at byte " +
             (ph.p_offset <= UINT64_MAX - ph.p_filesz ? std::to_string(ph.p_offset + ph.p_filesz)
                                                      : std::string("past 2^64")) +
             ", the file has " + std::to_string(file_size) + " (an interrupted install?)";
  }
  // Section headers are not used by the loader, but they come last in the
  // file: when they are cut off, so may be anything the linker put before.
  if (eh.e_shnum != 0 && !fits(eh.e_shoff, uint64_t{eh.e_shnum} * eh.e_shentsize, file_size))
    return "truncated: section headers end past the file's " + std::to_string(file_size) +
           " bytes (an interrupted install?)";
  return {};
}

std::string plugin_file_problem(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return std::string("cannot open: ") + std::strerror(errno);
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0) {
    why = std::string("cannot stat: ") + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    why = S_ISFIFO(st.st_mode)   ? "not a regular file (a FIFO)"
          : S_ISDIR(st.st_mode)  ? "not a regular file (a directory)"
          : S_ISSOCK(st.st_mode) ? "not a regular file (a socket)"
                                 : "not a regular file (a device)";
  } else {
    std::string head(kHeaderBytes, '\0');
    size_t got = 0;
    while (got < head.size()) {
      const ssize_t n = ::pread(fd, head.data() + got, head.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    head.resize(got);
    why = elf_problem(head, static_cast<uint64_t>(st.st_size));
  }
  ::close(fd);
  return why;
}

}  // namespace sparkle::registry
