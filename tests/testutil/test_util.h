// Helpers shared by the test binaries: temporary directories, files, and running our tools.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace dsc::testing {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, const std::string& bytes);

struct CommandResult {
  int rc;              // exit status, -1 if the command did not exit normally
  std::string output;  // stdout (and stderr when asked)
};
// Runs a shell command line (arguments already quoted).
CommandResult RunCommand(const std::string& command, bool with_stderr = true);
// Single-quotes `s` for the shell.
std::string ShellQuote(const std::string& s);

// Sets (or, with null, unsets) an environment variable for its lifetime, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace dsc::testing
