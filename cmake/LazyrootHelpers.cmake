# lazyroot_add_unit_test(NAME SOURCES files... LIBS targets...)
# Registers one GoogleTest binary with CTest. Tests of a library link only that
# library, so an include that crosses a module arrow fails to build.
find_package(GTest REQUIRED)
include(GoogleTest)
function(lazyroot_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main lazyroot_warnings)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS unit)
endfunction()

# lazyroot_add_integration_test(NAME COMMAND cmd args...)
# Integration tests are scripts that start real registries, mount real FUSE
# filesystems and compare against independent tools. They get the built binary
# through $LAZYROOT_BIN.
function(lazyroot_add_integration_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "COMMAND" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES
    LABELS integration TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "LAZYROOT_BIN=$<TARGET_FILE:lazyroot>;LAZYROOT_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
