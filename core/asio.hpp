// The one way into Boost.Asio for this project.
//
// Boost 1.74's <boost/asio/awaitable.hpp> uses std::exchange without including <utility>, which
// g++ 12 in C++20 mode rejects. Every file that needs Asio (or Beast, which pulls Asio in) includes
// this header first instead of an Asio header directly.
#pragma once

#include <utility>

#include <boost/asio.hpp>
