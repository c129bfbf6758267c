#include "src/reference.h"
