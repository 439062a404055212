/** The tiny guests live in the library (src/TinyGuest.ts); tests import them from here. */
export * from "../../src/TinyGuest.js"
