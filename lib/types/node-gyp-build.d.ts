// SPDX-License-Identifier: Apache-2.0
// Types for node-gyp-build, which ships none: it loads the addon found under a package root.
declare module 'node-gyp-build' {
  function load(dir: string): unknown;
  export default load;
}
