// The ncursesw system library, with its macros turned into functions Swift can call.
#ifndef PARLEY_CNCURSESW_SHIM_H
#define PARLEY_CNCURSESW_SHIM_H

#define NCURSES_WIDECHAR 1
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif
#include <locale.h>
#include <wchar.h>
#include <ncursesw/curses.h>
#include <ncursesw/term.h>
#include <langinfo.h>
#include <malloc.h>

/// glibc's malloc_trim: returns free heap pages to the system (the screen calls it when a reply ends).
static inline void parley_release_free_memory(void) { malloc_trim(0); }

/// A fixed 1 MB mmap threshold for glibc's malloc: buffers that big (a session file's bytes, a paste, a
/// reply's stream) are then mapped on their own and unmapped when freed. The default threshold grows
/// to the size of the largest block freed, after which such blocks come from a thread's arena, whose
/// top malloc_trim never returns (a resumed 9 MB session held 7 MB that way).
static inline void parley_tune_malloc(void) { mallopt(M_MMAP_THRESHOLD, 1 << 20); }

/// The C library's width of one character, as curses counts it.
static inline int parley_wcwidth(wchar_t c) { return wcwidth(c); }

static inline int parley_lines(void) { return LINES; }
static inline int parley_cols(void) { return COLS; }
static inline int parley_colors(void) { return COLORS; }
static inline int parley_color_pairs(void) { return COLOR_PAIRS; }
static inline WINDOW *parley_stdscr(void) { return stdscr; }

static inline attr_t parley_a_normal(void) { return A_NORMAL; }
static inline attr_t parley_a_bold(void) { return A_BOLD; }
static inline attr_t parley_a_dim(void) { return A_DIM; }
static inline attr_t parley_a_underline(void) { return A_UNDERLINE; }
static inline attr_t parley_a_reverse(void) { return A_REVERSE; }
#ifdef A_ITALIC
static inline attr_t parley_a_italic(void) { return A_ITALIC; }
#else
static inline attr_t parley_a_italic(void) { return A_UNDERLINE; }
#endif

/// Puts one cell: a grapheme (its scalars, NUL-terminated) with attributes and an extended colour pair.
/// Returns ERR when ncurses refuses the grapheme (several spacing characters), so the caller can fall back.
static inline int parley_put_cell(int y, int x, const wchar_t *text, attr_t attrs, int pair) {
    cchar_t cell;
    if (setcchar(&cell, text, attrs, 0, &pair) != OK) return ERR;
    return mvadd_wch(y, x, &cell);
}

/// Whether terminfo knows `name` and it can draw a full screen: 1 yes, 0 unknown name, 2 known but it
/// cannot address the cursor or clear the screen (dumb, a printing terminal). Probes without
/// initscr, which would print an error and exit on an unknown name.
static inline int parley_term_check(const char *name) {
    int err = 0;
    if (setupterm((char *)name, 1, &err) != OK) return 0;
    const char *cup = tigetstr("cup");
    const char *clear = tigetstr("clear");
    int usable = cup && cup != (char *)-1 && clear && clear != (char *)-1;
    del_curterm(cur_term);
    return usable ? 1 : 2;
}

/// The character set of the current LC_CTYPE ("UTF-8", "ANSI_X3.4-1968", ...).
static inline const char *parley_codeset(void) { return nl_langinfo(CODESET); }

#endif
