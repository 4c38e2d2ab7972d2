// Package cache is the agent's local boot image cache. It downloads the
// files of the boot images its subnet's deployments need from Central
// (resuming broken downloads, verifying SHA-256, renaming into place only
// when whole), serves them to the TFTP server as "<image id>/<file name>"
// (it implements tftp.FileSource, and never hands out a partial file), and
// prunes files no deployment needs to keep under a size limit.
//
// cache must never import the packet engine, the PXE server or the
// election; it reaches Central through the small Downloader interface.
package cache
