// Shared binding of the HTTP servers' listening sockets (see http_listen.h).
#include "server/http_listen.h"

#include <sys/socket.h>

#include "core/error.h"

namespace luzao::server {

void prepare_listen_socket(httplib::Server& http, ListenSocket& socket) {
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second server
  // silently share the port instead of failing to bind.
  http.set_socket_options([listen = &socket](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen->fd = sock;
  });
}

int bind_listen_socket(httplib::Server& http, const ListenSocket& socket, const std::string& host,
                       int port) {
  const int bound =
      port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    fail(ErrorKind::kIo, "cannot listen on {}:{} (in use, or a bad address?)", host, port);
  }
  if (socket.fd >= 0) ::listen(socket.fd, SOMAXCONN);
  return bound;
}

}  // namespace luzao::server
