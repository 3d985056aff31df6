// Where the agent and the CLI meet by default.
#pragma once

namespace tollgate {

inline constexpr const char* kDefaultSocketPath = "/run/tollgate/tollgate.sock";

}  // namespace tollgate
