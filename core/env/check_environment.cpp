// check_environment() of include/sparkle/diagnostics.hpp: every variable the
// core reads, validated by one rule each, so that a bad value is one error
// naming it instead of being ignored, warned about or failing at the first
// convolution.
#include <cstdlib>
#include <cstring>
#include <sparkle/diagnostics.hpp>
#include <sparkle/error.hpp>
#include <sparkle/text.hpp>
#include <string>

#include "log/log.hpp"

extern char** environ;

namespace sparkle {
namespace {

[[noreturn]] void bad(const std::string& name, const std::string& value, const std::string& rule) {
  throw Error(ErrorCode::invalid_argument,
              name + "='" + printable(value) + "' " + rule + " (see docs/ENVIRONMENT.md)");
}

void byte_count(const std::string& name, const std::string& v) {
  const ParsedInteger p = parse_integer(v);
  if (p.problem != IntegerProblem::none || p.value < 0)
    bad(name, v, "is not a byte count (a non-negative integer)");
}

void one_of(const std::string& name, const std::string& v,
            std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  bad(name, v, "must be one of " + list);
}

// "auto", a backend name, or NAME:INDEX (the syntax; whether the device
// exists is checked when it is used).
void device_name(const std::string& name, const std::string& v) {
  const size_t colon = v.find(':');
  const std::string backend = v.substr(0, colon);
  const bool name_ok =
      !backend.empty() &&
      backend.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") == std::string::npos;
  bool index_ok = true;
  if (colon != std::string::npos) {
    const ParsedInteger i = parse_integer(v.substr(colon + 1));
    index_ok = i.problem == IntegerProblem::none && i.value >= 0;
  }
  if (!name_ok || !index_ok) bad(name, v, "must be auto, a backend name or NAME:INDEX");
}

void verbose_words(const std::string& name, const std::string& v) {
  size_t start = 0;
  while (start <= v.size()) {
    const size_t end = std::min(v.find(',', start), v.size());
    if (v.substr(start, end - start) != "dispatch")
      bad(name, v, "must be a comma-separated list of: dispatch");
    start = end + 1;
  }
}

struct Rule {
  const char* name;
  void (*check)(const std::string& name, const std::string& value);
};

const Rule kRules[] = {
    {"SPARKLE_PLUGIN_PATH", nullptr},
    {"SPARKLE_DEVICE", &device_name},
    {"SPARKLE_VERBOSE", &verbose_words},
    {"SPARKLE_CACHE_DIR", nullptr},
    {"SPARKLE_CACHE_MAX_BYTES", &byte_count},
    {"SPARKLE_CACHE_DISABLE",
     [](const std::string& n, const std::string& v) {
       one_of(n, v, {"0", "1"});
     }},
    {"SPARKLE_TUNING_DISABLE",
     [](const std::string& n, const std::string& v) {
       one_of(n, v, {"0", "1"});
     }},
    {"SPARKLE_LOG_LEVEL",
     [](const std::string& n, const std::string& v) {
       one_of(n, v, {"debug", "info", "warn", "error"});
     }},
    {"SPARKLE_HOST_MEMORY_LIMIT", &byte_count},
    {"SPARKLE_PLAN_CACHE_CAPACITY",
     [](const std::string& n, const std::string& v) {
       const ParsedInteger p = parse_integer(v);
       if (p.problem != IntegerProblem::none || p.value < 1 || p.value > 1000000)
         bad(n, v, "must be an integer from 1 to 1000000");
     }},
    // Read by tests and tools/setup.sh only.
    {"SPARKLE_TEST_CONSTANT_WEIGHTS", nullptr},
    {"SPARKLE_TEST_DEVICES", nullptr},
    {"SPARKLE_TEST_SEED", nullptr},
    {"SPARKLE_SKIP_SANITIZERS", nullptr},
    {"SPARKLE_FUZZ_SECONDS", nullptr},
};

// Variables of the backends: each plugin validates its own (and names the
// variable in its error), so only their names are known here.
const char* const kPluginPrefixes[] = {"SPARKLE_CPU_", "SPARKLE_GL_", "SPARKLE_AMDGPU_",
                                       "SPARKLE_SIM_"};

}  // namespace

void check_environment() {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr || std::strncmp(*e, "SPARKLE_", 8) != 0) continue;
    const std::string name(static_cast<const char*>(*e), eq), value(eq + 1);
    bool known = false;
    for (const Rule& r : kRules) {
      if (name != r.name) continue;
      known = true;
      // Empty means unset, as everywhere sparkle reads its variables.
      if (r.check != nullptr && !value.empty()) r.check(name, value);
    }
    for (const char* p : kPluginPrefixes) known = known || name.rfind(p, 0) == 0;
    // A typo would otherwise be ignored silently; a warning, not an error,
    // so that a variable of a newer sparkle does not break an older one.
    if (!known)
      log::warn("environment", name + " is not a variable sparkle reads (docs/ENVIRONMENT.md)");
  }
}

}  // namespace sparkle
