/*
** grammar.h: constrained decoding (issue 16), the part that knows nothing of
** models: a context-free grammar in the GBNF notation llama.cpp users write
** (and that JSON schemas compile to), and a matcher that says which bytes
** may come next. The engine asks it, at each step, which tokens of the
** vocabulary keep the text inside the grammar.
**
** GBNF, as accepted here:
**   root  ::= "{" ws pair ("," ws pair)* "}"    # rules; "root" is the start
**   pair  ::= [a-z]+ ":" ws value?              # classes, repetition: * + ?
**   value ::= [^"\\] | "\\" ["\\/bfnrt] | x{2,4} | .   # negation, {m,n}, any char
** Literals and classes take \n \r \t \\ \" \] \xHH \uHHHH \UHHHHHHHH;
** comments run from # to the end of the line; a rule ends at a newline
** outside parentheses unless the next line goes on with "|". A grammar that
** refers to an undefined rule, has no root, or recurses on the left is
** refused with the rule named.
**
** The matcher follows every way the text so far can continue (a set of
** stacks, as a pushdown automaton would), code point by code point; bytes
** of a UTF-8 sequence cut between tokens wait for the rest.
*/
#ifndef CN_GRAMMAR_H
#define CN_GRAMMAR_H

#include "base/base.h"

typedef struct gr_grammar gr_grammar;
typedef struct gr_matcher gr_matcher;

/* Parse GBNF text. Errors name the line and what is wrong. */
int gr_parse(const char *text, gr_grammar **out, cn_err *err);
void gr_free(gr_grammar *g);
/* The rules, printed back in GBNF (for tests and --verbose). malloc'd. */
char *gr_print(const gr_grammar *g);

/*
** A JSON Schema (the subset schema.c lists) compiled to GBNF text (malloc'd
** into *gbnf), or straight to a grammar. A keyword that cannot be honoured
** is CN_EUNSUPPORTED naming it: "schema: keyword \"not\" is not supported".
*/
int gr_schema_to_gbnf(const char *schema, size_t len, char **gbnf, cn_err *err);
int gr_from_schema(const char *schema, size_t len, gr_grammar **out, cn_err *err);

/* A matcher at the start of g's root rule (g must outlive it). */
int gr_matcher_new(const gr_grammar *g, gr_matcher **out, cn_err *err);
gr_matcher *gr_matcher_clone(const gr_matcher *m);
void gr_matcher_free(gr_matcher *m);

/* Feed n bytes: true if the grammar allows them (the matcher moved on),
** false if not (the matcher is unchanged). */
bool gr_accept(gr_matcher *m, const char *bytes, size_t n);
/* Would gr_accept take these bytes? The matcher is not changed. They
** agree but where a hostile grammar passes the matcher's work limit (a
** repetition of a rule that may match nothing): gr_accept then refuses
** and gr_limited says so. */
bool gr_allows(const gr_matcher *m, const char *bytes, size_t n);
bool gr_limited(const gr_matcher *m);
/* The matcher's state as bytes (its stacks and any cut UTF-8 sequence):
** two matchers with equal keys allow exactly the same continuations, so a
** token mask can be cached under it. Returns the length; writes nothing
** when it is over cap. */
size_t gr_matcher_key(const gr_matcher *m, void *buf, size_t cap);

/* Is the text so far a whole sentence of the grammar (it may stop here)? */
bool gr_complete(const gr_matcher *m);
/* The fewest characters that complete the text from here (0: complete):
** what constrained decoding steers by as its budget runs out. */
size_t gr_distance(const gr_matcher *m);
/* Can nothing more follow (complete, and no way to go on)? */
bool gr_finished(const gr_matcher *m);

#endif
