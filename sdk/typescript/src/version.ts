/** The version of this package, sent in the User-Agent (a unit test holds it to package.json). */
export const VERSION = "0.1.0";
