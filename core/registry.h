#ifndef PA_CORE_REGISTRY_H
#define PA_CORE_REGISTRY_H
#include "backend.h"
/* NULL when the backend is not compiled in. */
const pa_backend_ops *pa_backend_find(pa_backend b);
/* The backend PA_BACKEND_AUTO resolves to now (PA_BACKEND env first). */
pa_backend pa_backend_auto(void);
#endif
