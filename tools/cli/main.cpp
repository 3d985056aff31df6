// tollgate: the command line of the tollgate load balancer.
#include <iostream>

#include "cli.h"

int main(int argc, char** argv) {
  return tollgate::cli::run(argc, argv, tollgate::cli::unix_socket_transport, std::cout, std::cerr);
}
