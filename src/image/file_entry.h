// What every kind of files.img entry has alike, reached without knowing the kind: the entry
// of each kind is the one message field of file_entry that is set, and most kinds carry their
// owner (fown) and status flags under the same names.
#pragma once

#include <google/protobuf/message.h>

#include "image/fdinfo.h"

namespace cryo::image {

// The kind's own message of `e` (e.reg(), e.pipe(), ...); null when none is set.
const google::protobuf::Message* kind_message(const file_entry& e);
google::protobuf::Message* mutable_kind_message(file_entry* e);

// The owner of the open file (F_SETOWN and F_SETSIG) when its kind records one, else null.
const fown_entry* file_owner(const file_entry& e);
fown_entry* mutable_file_owner(file_entry* e);

// The open file's status flags when its kind records them (0 otherwise).
uint32_t file_flags(const file_entry& e);

}  // namespace cryo::image
