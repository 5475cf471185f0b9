#include "image/file_entry.h"

#include <google/protobuf/descriptor.h>

namespace cryo::image {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const FieldDescriptor* kind_field(const file_entry& e) {
  const auto* d = file_entry::descriptor();
  const auto* r = file_entry::GetReflection();
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated() && r->HasField(e, f))
      return f;
  }
  return nullptr;
}

}  // namespace

const Message* kind_message(const file_entry& e) {
  const FieldDescriptor* f = kind_field(e);
  return f ? &file_entry::GetReflection()->GetMessage(e, f) : nullptr;
}

Message* mutable_kind_message(file_entry* e) {
  const FieldDescriptor* f = kind_field(*e);
  return f ? file_entry::GetReflection()->MutableMessage(e, f) : nullptr;
}

const fown_entry* file_owner(const file_entry& e) {
  const Message* m = kind_message(e);
  if (!m) return nullptr;
  const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName("fown");
  if (!f || f->message_type() != fown_entry::descriptor() || !m->GetReflection()->HasField(*m, f))
    return nullptr;
  return static_cast<const fown_entry*>(&m->GetReflection()->GetMessage(*m, f));
}

fown_entry* mutable_file_owner(file_entry* e) {
  Message* m = mutable_kind_message(e);
  if (!m) return nullptr;
  const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName("fown");
  if (!f || f->message_type() != fown_entry::descriptor()) return nullptr;
  return static_cast<fown_entry*>(m->GetReflection()->MutableMessage(m, f));
}

uint32_t file_flags(const file_entry& e) {
  const Message* m = kind_message(e);
  if (!m) return 0;
  const FieldDescriptor* f = m->GetDescriptor()->FindFieldByName("flags");
  if (!f || f->cpp_type() != FieldDescriptor::CPPTYPE_UINT32 || f->is_repeated()) return 0;
  return m->GetReflection()->GetUInt32(*m, f);
}

}  // namespace cryo::image
