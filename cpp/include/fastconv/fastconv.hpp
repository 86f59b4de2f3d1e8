// fastconv/fastconv.hpp — umbrella header of the public C++ API.
#pragma once

#include "fastconv/activation.hpp"
#include "fastconv/conv.hpp"
#include "fastconv/errors.hpp"
#include "fastconv/linear.hpp"
#include "fastconv/norm.hpp"
#include "fastconv/plan.hpp"
#include "fastconv/pool.hpp"
#include "fastconv/runtime.hpp"
#include "fastconv/tensor.hpp"
#include "fastconv/version.hpp"
#include "fastconv/winograd.hpp"
