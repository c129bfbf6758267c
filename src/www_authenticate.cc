#include "src/www_authenticate.h"
