// fastconv/errors.hpp — the exception hierarchy of the public C++ API.
//
// Every error the core reports is a fastconv::Error. The subclasses separate invalid
// arguments (the call can never succeed) from valid requests an algorithm does not support,
// dtype mismatches, size arithmetic that overflows int64, and allocation failure. The Python
// bindings map them to ValueError, ValueError, TypeError, OverflowError and MemoryError.
#pragma once

#include <stdexcept>
#include <string>

namespace fastconv {

/// Base class of every exception thrown by fastconv.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An argument is invalid for the operation (shape, parameter value, unknown name).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// The arguments are valid but the named algorithm does not support them.
class Unsupported : public Error {
 public:
  using Error::Error;
};

/// An array has a dtype the operation does not accept, or dtypes are mixed.
class DTypeError : public Error {
 public:
  using Error::Error;
};

/// Size arithmetic would overflow a 64-bit integer.
class OverflowError : public Error {
 public:
  using Error::Error;
};

/// A buffer the operation needs could not be allocated.
class OutOfMemory : public Error {
 public:
  using Error::Error;
};

}  // namespace fastconv
