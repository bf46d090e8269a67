// The shared --device/--split options and the signal-driven serving loop (cli_common.h).
#include "cli/cli_common.h"

#include <pthread.h>

#include <exception>
#include <thread>

#include "runtime/split.h"

namespace luzao::cli {

CLI::Option* add_device_options(CLI::App& cmd, std::string& device, std::string& split) {
  CLI::Option* device_option =
      cmd.add_option("--device", device, "Device: cpu, reference, opencl:N, cuda:N or <plugin>:N")
          ->capture_default_str();
  return cmd
      .add_option("--split", split,
                  "Split the layers over several devices, in order: DEV,DEV[,...] with DEV as for "
                  "--device, or NAME:INDEX:RATIO on every device for unequal shares (e.g. "
                  "cpu:0:3,opencl:0:1)")
      ->check(split_syntax_error)
      ->excludes(device_option);
}

sigset_t block_stop_signals() {
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void serve_until_signal(const sigset_t& signals, const Logger& logger,
                        const std::function<void()>& stop, const std::function<void()>& listen) {
  std::thread waiter([&signals, &logger, &stop] {
    int sig = 0;
    sigwait(&signals, &sig);
    logger.info("signal {}: stopping", sig);
    stop();
  });
  std::exception_ptr failure;
  try {
    listen();
  } catch (...) {
    failure = std::current_exception();
  }
  pthread_kill(waiter.native_handle(), SIGTERM);  // wakes the waiter if no signal came
  waiter.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace luzao::cli
