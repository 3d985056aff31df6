// What tollgated checks of the kernel before it loads anything: every
// feature the data path uses is there (on every kernel of the matrix), and
// a program the verifier refuses is reported in one line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>
#include <string>

#include "kernel_probe.h"
#include "libbpf_log.h"
#include "refused.skel.h"

using namespace tollgate;

namespace {

void skip_unless_root() {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: loads BPF programs";
}

TEST(KernelProbe, EveryFeatureTheDataPathUsesIsPresent) {
  skip_unless_root();
  auto features = probe_kernel_features();
  ASSERT_GT(features.size(), 20u);
  for (const auto& feature : features) EXPECT_TRUE(feature.present) << feature.name << ": " << feature.detail;
  EXPECT_TRUE(require_kernel_features(features, kernel_release()));
}

// stderr, captured into a file for the length of a scope.
class CapturedStderr {
 public:
  CapturedStderr() : file_(std::tmpfile()), saved_(dup(STDERR_FILENO)) {
    std::fflush(stderr);
    dup2(fileno(file_), STDERR_FILENO);
  }
  std::string release() {
    std::fflush(stderr);
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    std::rewind(file_);
    std::string text;
    for (int c; (c = std::fgetc(file_)) != EOF;) text.push_back(static_cast<char>(c));
    std::fclose(file_);
    return text;
  }

 private:
  FILE* file_;
  int saved_;
};

size_t count_lines(const std::string& text, std::string_view needle) {
  size_t count = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find(needle) != std::string::npos) ++count;
  return count;
}

TEST(VerifierRefusal, IsLoggedWholeAtDebugAndInOneLineAtError) {
  skip_unless_root();
  log::capture_libbpf();
  for (log::Level level : {log::Level::debug, log::Level::error}) {
    log::set_level(level);
    CapturedStderr captured;
    refused* skeleton = refused__open_and_load();
    std::string output = captured.release();
    log::set_level(log::Level::info);
    EXPECT_EQ(skeleton, nullptr) << "the kernel loaded a program that reads past its bounds check";
    refused__destroy(skeleton);

    SCOPED_TRACE(output);
    EXPECT_EQ(count_lines(output, "tollgate error the kernel's verifier refused prog 'tg_refused': "), 1u);
    EXPECT_EQ(count_lines(output, "R2 offset is outside of the packet"), level == log::Level::debug ? 2u : 1u)
        << "the reason: once in the summary, once more in the whole log at debug";
    const size_t log_lines = count_lines(output, "tollgate debug libbpf: prog 'tg_refused' verifier: ");
    if (level == log::Level::debug)
      EXPECT_GE(log_lines, 3u) << "the whole log at debug";
    else
      EXPECT_EQ(log_lines, 0u) << "no log lines at error level";
  }
}

}  // namespace
