# `cmake --install` rules and the Debian package (CPack, `scripts/package`).
#
#   bin/wasmjail                          the binary (rpath $ORIGIN/../lib/wasmjail)
#   lib/wasmjail/libnode.so.108           Debian's libnode108, carried (see below)
#   /etc/wasmjail/policies/*.yaml         the shipped policies        (conffiles)
#   /etc/wasmjail/server.yaml             the service's server config (conffile)
#   lib/systemd/system/wasmjail.{service,socket}
#   share/doc/wasmjail/                   README, configs/README, examples, openapi.json
#
# Why libnode is carried rather than depended on: on machines like ours NodeSource's
# nodejs is installed, and Debian's libnode108 cannot be installed beside it (it depends on
# node-acorn, which needs Debian's nodejs: `apt-get install --dry-run libnode108` fails).
# The package therefore carries the same Debian libnode.so.108 the project builds against,
# under /usr/lib/wasmjail (off the loader's default path, so nothing else picks it up), and
# depends on that library's own dependencies (computed by dpkg-shlibdeps).
# Policies and the server config live in /etc/wasmjail whatever the prefix (the binary looks
# there: cli/policy.cc, WJ_SYSTEM_POLICY_DIR).
set(WJ_ETC "${WJ_SYSTEM_ETC_DIR}")
# Installing (and cpack) never builds: scripts/package builds first, and package_test must not
# relink the binary under the feet of tests running beside it.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

install(TARGETS wasmjail RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(NOT WJ_SYSTEM_V8)
  get_filename_component(WJ_LIBNODE_REAL "${V8_LIBRARY}" REALPATH)
  install(FILES "${WJ_LIBNODE_REAL}" DESTINATION lib/wasmjail RENAME libnode.so.108)
endif()
file(GLOB WJ_POLICY_FILES CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/configs/policies/*.yaml")
install(FILES ${WJ_POLICY_FILES} DESTINATION "${WJ_ETC}/policies")
install(FILES "${CMAKE_SOURCE_DIR}/packaging/server.yaml" DESTINATION "${WJ_ETC}")
install(FILES "${CMAKE_SOURCE_DIR}/packaging/systemd/wasmjail.service"
              "${CMAKE_SOURCE_DIR}/packaging/systemd/wasmjail.socket"
        DESTINATION lib/systemd/system)
install(FILES "${CMAKE_SOURCE_DIR}/README.md" "${CMAKE_SOURCE_DIR}/server/openapi.json"
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES "${CMAKE_SOURCE_DIR}/configs/README.md" DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME configs.md)
install(FILES "${CMAKE_SOURCE_DIR}/configs/server.yaml" DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(DIRECTORY "${CMAKE_SOURCE_DIR}/configs/examples/" DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/jobs)

# ---- CPack: build/wasmjail_<version>_amd64.deb -------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME wasmjail)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "wasmjail maintainers <wasmjail@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "hardened executor for untrusted WebAssembly (WASI) jobs")
set(CPACK_PACKAGE_DIRECTORY "${CMAKE_BINARY_DIR}")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # wasmjail_<version>_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
# dpkg-shlibdeps finds the carried libnode through the binary's $ORIGIN rpath, and lists its own
# dependencies (libicu72, libc-ares2, ...).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
# libcurl is opened at run time (storage/curl_lib.h), so dpkg-shlibdeps cannot see it.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libcurl4")
set(WJ_CONFFILES "${WJ_ETC}/server.yaml\n")
foreach(f ${WJ_POLICY_FILES})
  get_filename_component(n "${f}" NAME)
  string(APPEND WJ_CONFFILES "${WJ_ETC}/policies/${n}\n")
endforeach()
file(WRITE "${CMAKE_BINARY_DIR}/packaging/conffiles" "${WJ_CONFFILES}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_BINARY_DIR}/packaging/conffiles"
    "${CMAKE_SOURCE_DIR}/packaging/debian/postinst"
    "${CMAKE_SOURCE_DIR}/packaging/debian/prerm"
    "${CMAKE_SOURCE_DIR}/packaging/debian/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
