// The service manager's readiness protocol (sd_notify(3)), written out: a
// datagram to the socket named by $NOTIFY_SOCKET ("@name": abstract).
// Without that variable (not started by systemd with Type=notify) nothing
// is sent. A few lines beat a dependency on libsystemd for one call.
#pragma once

#include <string_view>

#include "result.h"

namespace tollgate {

// Sends `state` ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."):
// Ok(true) sent, Ok(false) no $NOTIFY_SOCKET, or why it could not be sent.
Result<bool> systemd_notify(std::string_view state);

}  // namespace tollgate
