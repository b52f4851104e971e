// proc_cpu.hpp: the benchmarks' CPU accounting for this process: all of it (getrusage), and per
// thread name from /proc/self/task, so a figure can name the thread (a loop, an encoder) it is for.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace bench {

// User + system CPU seconds of the whole process so far.
inline double process_cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// CPU seconds per thread name (threads of the same name summed), from /proc/self/task.
inline std::map<std::string, double> threads_cpu_by_name() {
    std::map<std::string, double> out;
    long ticks = sysconf(_SC_CLK_TCK);
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return out;
    while (dirent *e = readdir(dir)) {
        if (e->d_name[0] == '.') continue;
        std::string base = std::string("/proc/self/task/") + e->d_name;
        std::ifstream comm_file(base + "/comm"), stat_file(base + "/stat");
        std::string comm, stat;
        std::getline(comm_file, comm);
        std::getline(stat_file, stat);
        // The name in field 2 may hold spaces and parentheses: the fields after it start past the last ')'.
        auto close = stat.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream fields(stat.substr(close + 2));
        std::string f;
        std::vector<std::string> v;
        while (fields >> f) v.push_back(f);
        if (v.size() < 13) continue;
        out[comm] += double(std::stoull(v[11]) + std::stoull(v[12])) / double(ticks);  // utime + stime
    }
    closedir(dir);
    return out;
}

} // namespace bench
