/* Status texts and names (from the one table WM_STATUS_MAP) and the
 * version. */
#include "internal.h"

const char *wm_strerror(wm_status s)
{
    switch (s) {
#define WM__STATUS_TEXT(name, value, text) case WM_##name: return text;
        WM_STATUS_MAP(WM__STATUS_TEXT)
#undef WM__STATUS_TEXT
    }
    return "unknown status";
}

const char *wm_status_name(wm_status s)
{
    switch (s) {
#define WM__STATUS_NAME(name, value, text) case WM_##name: return #name;
        WM_STATUS_MAP(WM__STATUS_NAME)
#undef WM__STATUS_NAME
    }
    return NULL;
}

const char *wm_version(void) { return WM_VERSION_STRING; }
unsigned wm_version_number(void) { return WM_VERSION_NUMBER; }
