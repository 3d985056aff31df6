// The bpf layer's main. Every test needs root (it loads BPF programs and
// makes a network namespace); without it each says so and is skipped,
// and the run exits 77, which ctest counts as skipped.
#include <gtest/gtest.h>
#include <unistd.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  return status == 0 && geteuid() != 0 ? 77 : status;
}
