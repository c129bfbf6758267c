#include "src/platform.h"
