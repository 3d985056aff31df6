// The tollgate command: talks to tollgated's control API.
#pragma once

#include <functional>
#include <ostream>
#include <string>

#include "result.h"

namespace tollgate::cli {

struct Reply {
  int status = 0;
  std::string body;
};

// Sends one request to the API; an error means no answer came.
using Transport =
    std::function<Result<Reply>(const std::string& method, const std::string& path, const std::string& body)>;
// The transport for a socket path (the real one: HTTP over a Unix socket).
Transport unix_socket_transport(const std::string& socket_path);

// Runs `tollgate ARGS...`; returns the exit code: 0 done, 1 the agent said
// no or could not be reached, 2 bad usage (the message names the argument).
int run(int argc, const char* const* argv, const std::function<Transport(const std::string&)>& connect,
        std::ostream& out, std::ostream& err);

// Percent-encodes a path segment ("198.18.100.1:80/tcp" -> "198.18.100.1%3A80%2Ftcp").
std::string encode_segment(std::string_view text);

}  // namespace tollgate::cli
