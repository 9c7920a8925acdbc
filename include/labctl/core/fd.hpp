#pragma once
// An owned file descriptor (closed on scope exit) and a close-on-exec pipe of two of them.

#include <unistd.h>

namespace labctl {

struct Fd {
    int fd = -1;
    Fd() = default;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    void reset() {
        if (fd >= 0)
            ::close(fd);
        fd = -1;
    }
};

/// pipe2(O_CLOEXEC) into `read_end` and `write_end`; throws Error(internal) on failure.
void make_pipe(Fd& read_end, Fd& write_end);

} // namespace labctl
