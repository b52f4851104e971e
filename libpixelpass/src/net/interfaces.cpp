#include "net/interfaces.hpp"

#include <ifaddrs.h>
#include <net/if.h>

#include <algorithm>
#include <memory>

namespace pp::net {

std::vector<Address> local_addresses(int family, bool dual_stack) {
    std::vector<Address> global, loopback;
    ifaddrs *list = nullptr;
    if (getifaddrs(&list) == 0) {
        std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owner(list, freeifaddrs);
        for (ifaddrs *i = list; i; i = i->ifa_next) {
            if (!i->ifa_addr || !(i->ifa_flags & IFF_UP)) continue;
            int f = i->ifa_addr->sa_family;
            bool wanted = (f == AF_INET && (family == AF_INET || dual_stack)) ||
                          (f == AF_INET6 && family == AF_INET6);
            if (!wanted) continue;
            Address a(i->ifa_addr, f == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
            if (a.is_link_local() || a.is_any()) continue;
            auto &bucket = a.is_loopback() ? loopback : global;
            if (std::find(bucket.begin(), bucket.end(), a) == bucket.end()) bucket.push_back(a);
        }
    }
    // IPv4 before IPv6 within each group: the common LAN case first.
    auto by_family = [](const Address &x, const Address &y) { return x.family() < y.family(); };
    std::stable_sort(global.begin(), global.end(), by_family);
    std::stable_sort(loopback.begin(), loopback.end(), by_family);
    global.insert(global.end(), loopback.begin(), loopback.end());
    return global;
}

} // namespace pp::net
