// The one way into Boost.Asio for this project.
//
// Boost 1.74's <boost/asio/awaitable.hpp> uses std::exchange without including <utility>, which
// g++ 12 in C++20 mode rejects. Every file that needs Asio (or Beast, which pulls Asio in) includes
// this header first instead of an Asio header directly.
#pragma once

#include <utility>

// Boost 1.74 looks for clang's coroutine support in libc++'s <experimental/coroutine> only; with
// libstdc++'s <coroutine> clang's C++20 coroutines work as g++'s do.
#if defined(__clang__) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif

#include <boost/asio.hpp>

// The project's short names for Boost's networking namespaces, the same in every file. The two
// empty blocks declare the namespaces an alias may only name once they exist.
namespace boost::beast::http {}
namespace boost::asio::ssl {}

namespace pullthrough {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
}  // namespace pullthrough
