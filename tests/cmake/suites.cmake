# Writes a ctest file with one test per GoogleTest suite of a test binary, run as
#   cmake -D BINARY=path -D OUTPUT=file -D LABEL=label -D TIMEOUT=seconds -P suites.cmake
# after each build of the binary. One process per suite rather than per test: a start of the
# sanitized binary costs about 0.7 s (registering its globals with ASan, and LSan's scan at exit),
# which, paid once per test, was half of the unit tests' time. A suite that skips a test exits 77
# (tests/unit_main.cpp), reported as skipped.
foreach(var BINARY OUTPUT LABEL TIMEOUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "suites.cmake: ${var} is not set")
  endif()
endforeach()

execute_process(COMMAND "${BINARY}" --gtest_list_tests
                OUTPUT_VARIABLE listing ERROR_VARIABLE errors RESULT_VARIABLE status TIMEOUT 60)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "suites.cmake: ${BINARY} --gtest_list_tests failed (${status}): ${errors}")
endif()

# A suite's line is its name and a dot at the start of a line; the tests under it are indented.
string(REGEX MATCHALL "\n[A-Za-z0-9_/]+\\." suites "\n${listing}")
if(NOT suites)
  message(FATAL_ERROR "suites.cmake: ${BINARY} lists no test suite")
endif()
set(script "")
foreach(match IN LISTS suites)
  string(STRIP "${match}" suite)
  string(REGEX REPLACE "\\.$" "" suite "${suite}")
  string(APPEND script
    "add_test([=[${suite}]=] [=[${BINARY}]=] [=[--gtest_filter=${suite}.*]=])\n"
    "set_tests_properties([=[${suite}]=] PROPERTIES LABELS ${LABEL} SKIP_RETURN_CODE 77"
    " TIMEOUT ${TIMEOUT})\n")
endforeach()
file(WRITE "${OUTPUT}" "${script}")
