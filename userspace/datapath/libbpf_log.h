// libbpf's messages, in the one logger.
#pragma once

#include <string>
#include <string_view>

#include "log.h"

namespace tollgate::log {

// Routes libbpf's messages into the logger. A verifier log (a program the
// kernel refused) goes whole to debug and summarised to error.
void capture_libbpf();
// While one lives on this thread, libbpf's warnings are debug lines: for
// a call whose failure is an expected answer (querying a TC hook that a
// fresh interface does not have yet: "Parent Qdisc doesn't exists").
class LibbpfWarningsExpected {
 public:
  LibbpfWarningsExpected();
  ~LibbpfWarningsExpected();
  LibbpfWarningsExpected(const LibbpfWarningsExpected&) = delete;
  LibbpfWarningsExpected& operator=(const LibbpfWarningsExpected&) = delete;
};

// The reason a verifier log ends with, and the instruction it stopped at.
std::string summarize_verifier_log(std::string_view log);

}  // namespace tollgate::log
