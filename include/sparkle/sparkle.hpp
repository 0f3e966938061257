// Umbrella header for embedding sparkle.
#pragma once

#include <sparkle/cache.hpp>
#include <sparkle/conv2d.hpp>
#include <sparkle/diagnostics.hpp>
#include <sparkle/engine.hpp>
#include <sparkle/error.hpp>
#include <sparkle/memory.hpp>
#include <sparkle/npy.hpp>
#include <sparkle/reference.hpp>
#include <sparkle/shapes.hpp>
#include <sparkle/text.hpp>
#include <sparkle/tune.hpp>
