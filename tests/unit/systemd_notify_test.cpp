// sd_notify's protocol by hand: what the service manager receives, on a
// path socket and an abstract one, and nothing without $NOTIFY_SOCKET.
#include "systemd_notify.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

using namespace tollgate;

namespace {

// A datagram socket bound to `name` (a path, or "@..." abstract), as
// systemd's is.
int bind_manager(const std::string& name) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, name.data(), name.size());
  if (name[0] == '@') address.sun_path[0] = '\0';
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address),
                 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size())),
            0)
      << std::strerror(errno);
  return fd;
}

std::string receive(int fd) {
  char buffer[256];
  ssize_t got = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
  return got < 0 ? std::string("<nothing>") : std::string(buffer, static_cast<size_t>(got));
}

TEST(SystemdNotify, TheManagerReceivesTheStateOnAPathOrAbstractSocket) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tollgate-notify-" + std::to_string(getpid()))).string();
  const std::string abstract = "@tollgate-notify-" + std::to_string(getpid());
  for (const std::string& name : {path, abstract}) {
    int manager = bind_manager(name);
    setenv("NOTIFY_SOCKET", name.c_str(), 1);
    auto sent = systemd_notify("READY=1");
    ASSERT_TRUE(sent) << sent.error().message;
    EXPECT_TRUE(*sent);
    EXPECT_EQ(receive(manager), "READY=1") << name;
    close(manager);
  }
  std::filesystem::remove(path);
  unsetenv("NOTIFY_SOCKET");
}

TEST(SystemdNotify, NothingIsSentOutsideTheManagerAndABadSocketIsNamed) {
  unsetenv("NOTIFY_SOCKET");
  auto none = systemd_notify("READY=1");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  setenv("NOTIFY_SOCKET", "relative/path", 1);
  auto bad = systemd_notify("READY=1");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("relative/path"), std::string::npos);
  setenv("NOTIFY_SOCKET", "/nonexistent/tollgate-notify", 1);
  EXPECT_FALSE(systemd_notify("READY=1"));
  unsetenv("NOTIFY_SOCKET");
}

}  // namespace
