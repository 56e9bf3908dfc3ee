/*
** catalog_data.c: the built-in catalog, src/models/catalog.json, linked in
** as bytes (the Makefile makes this object depend on the JSON file).
*/
#include "models/models.h"

extern const char mdl_catalog_json[], mdl_catalog_json_end[];

__asm__(".section .rodata\n"
        ".global mdl_catalog_json\n"
        "mdl_catalog_json:\n"
        ".incbin \"src/models/catalog.json\"\n"
        ".global mdl_catalog_json_end\n"
        "mdl_catalog_json_end:\n"
        ".byte 0\n"
        ".previous\n");

const char *mdl_builtin_catalog(size_t *len)
{
    *len = (size_t)(mdl_catalog_json_end - mdl_catalog_json);
    return mdl_catalog_json;
}
