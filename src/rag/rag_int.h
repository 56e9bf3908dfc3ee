/*
** rag_int.h: what the extractive answer (extract.c) and passage trimming
** (trim.c) share: one way of cutting a passage into units a reader can
** take on their own, and one way of telling which words of the question a
** unit carries. Kept in one place so the two never disagree about what a
** sentence is or what counts as a match.
*/
#ifndef CN_RAG_INT_H
#define CN_RAG_INT_H

#include "rag/rag.h"

/* A content term: lower-cased, crudely stemmed, at least three characters. */
typedef struct rag_term {
    char w[24];
    unsigned char n;
} rag_term;

/* The distinct content terms of s[0..len) (stop words out), at most max. */
int rag_terms_of(const char *s, size_t len, rag_term *t, int max);

/* How many of q[0..nq) the text s[0..len) holds (each counted once); every
** word of s is looked at, however long s is. */
int rag_terms_held(const char *s, size_t len, const rag_term *q, int nq);

/* One unit of a passage: p[off, off + len) is the whole of it as written
** (a list item with its bullet); the content starts at p + body. item: a
** list item or a table row (a unit by line, whatever its punctuation). */
typedef struct rag_unit_span {
    size_t off, len, body;
    bool item;
} rag_unit_span;

typedef int (*rag_unit_fn)(void *ctx, const char *p, const rag_unit_span *u);

/* Cut p[0..n) into units, in order: list items and table rows line by
** line, the rest into sentences (a blank line also ends one). Every byte
** that is not a separator between units is in exactly one unit; a unit may
** be only white space. Stops at the first non-zero return of fn. */
int rag_split_units(const char *p, size_t n, rag_unit_fn fn, void *ctx);

#endif
