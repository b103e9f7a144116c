/* SPDX-License-Identifier: MIT */
#pragma once

/* A packager may pass -DZTNA_VERSION='"x.y"' in CPPFLAGS. */
#ifndef ZTNA_VERSION
#define ZTNA_VERSION "0.1"
#endif
