# Writes IN (a text file) into OUT as the C++ constant NAME, in namespace fidelis::server.
file(READ ${IN} content)
string(FIND "${content}" ")fidelis_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter")
endif()
file(WRITE ${OUT}.tmp "// Generated from ${IN} by embed.cmake.\nnamespace fidelis::server {\nextern const char ${NAME}[];\nconst char ${NAME}[] = R\"fidelis_embed(${content})fidelis_embed\";\n}  // namespace fidelis::server\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
