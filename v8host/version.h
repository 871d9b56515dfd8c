// The version of the V8 library this process runs (not the headers it was built with).
#pragma once

#include <string>

namespace wj {

std::string v8_version();

}  // namespace wj
