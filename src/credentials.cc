#include "src/credentials.h"
