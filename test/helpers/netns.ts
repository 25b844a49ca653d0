// SPDX-License-Identifier: Apache-2.0
// Several "hosts" made of network namespaces for the tests: scripts/netns.js (shared with the
// benches, which are plain JavaScript), re-exported with its types.
export { haveCommand, makeHosts, type NetHosts } from '../../scripts/netns';
