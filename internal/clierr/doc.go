// Package clierr is how lvss's command-line tools (lvss, lvss-writer)
// report a failure: the one table of hints saying what to do about it, and
// the error's text and JSON forms. Both tools use it so that a script or a
// human meets the same shape and the same advice from either.
package clierr
