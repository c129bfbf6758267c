#include "src/manifest.h"
