#include "v8host/version.h"

#include <v8.h>

namespace wj {

std::string v8_version() {
  return v8::V8::GetVersion();
}

}  // namespace wj
