// The unit tests' main: GoogleTest's own, except for the exit status of a run that skipped tests.
// ctest starts the binary once per suite (tests/cmake/suites.cmake); a suite that skipped a test
// and failed none exits 77, which ctest reports as skipped, so a skip never passes for a pass.
#include <gtest/gtest.h>

namespace {
constexpr int kSkipped = 77;
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  if (result == 0 && ::testing::UnitTest::GetInstance()->skipped_test_count() > 0) {
    return kSkipped;
  }
  return result;
}
