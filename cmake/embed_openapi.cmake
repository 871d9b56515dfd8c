# Writes ${OUT}: server/openapi.json as a C++ string (served at GET /v1/openapi.json).
file(READ "${IN}" doc)
string(FIND "${doc}" ")wjopenapi\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter")
endif()
file(WRITE "${OUT}.tmp" "#include \"server/openapi.h\"\nnamespace wj {\nconst std::string& openapi_document() {\n  static const std::string doc = R\"wjopenapi(${doc})wjopenapi\";\n  return doc;\n}\n}  // namespace wj\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
